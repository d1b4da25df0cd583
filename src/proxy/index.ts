/** The balancer's public surface, for the composition root and the status endpoint. */
export { TcpProxy, type ProxyDeps, type ProxyStatus } from './proxy';
export type { FrontendStatus, ProxyBackendStatus, ClientConnection, ConnectionObserver } from './frontend';
export { proxySettings, type ProxyConfigSource, type ProxySettings, type FrontendSettings } from './settings';
