/** The balancer's public surface, for the composition root and the status endpoint. */

export type { ClientConnection, ConnectionObserver, FrontendStatus, ProxyBackendStatus } from './frontend';
export { type ProxyDeps, type ProxyStatus, TcpProxy } from './proxy';
export { type FrontendSettings, type ProxyConfigSource, type ProxySettings, proxySettings } from './settings';
