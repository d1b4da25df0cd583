/**
 * The smallest valid config text, for tests that load one: three peers on 10.0.0.11-13, the VIP on
 * eth0, the given secret file, then whatever the test adds (YAML appended as written). Host-side
 * checks would refuse it on this machine: tests parse it with parseConfigText or `check --offline`.
 */
export function minimalConfig(secretFile: string, extra = ''): string {
  return `
nodeName: cp1
peers:
  - { name: cp1, address: 10.0.0.11 }
  - { name: cp2, address: 10.0.0.12 }
  - { name: cp3, address: 10.0.0.13 }
vip: { address: 10.0.0.100/24, interface: eth0 }
election:
  secretFile: ${secretFile}
${extra}`;
}
