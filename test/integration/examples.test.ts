import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { runCli } from '../helpers/proxy-harness.js';

const EXAMPLES = fileURLToPath(new URL('../../examples/', import.meta.url));

describe('examples/: one commented config per role', () => {
  it('has a proxy and a sidecar example', () => {
    expect(readdirSync(EXAMPLES).filter((f) => f.endsWith('.yaml')).sort()).toEqual(['proxy.yaml', 'sidecar.yaml']);
  });

  it('examples/proxy.yaml passes licgate validate as a proxy', async () => {
    const r = await runCli(['validate', '--config', `${EXAMPLES}proxy.yaml`]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('valid — proxy (2 frontends)');
  });

  it('examples/sidecar.yaml passes licgate validate as a sidecar', async () => {
    const r = await runCli(['validate', '--config', `${EXAMPLES}sidecar.yaml`]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('valid — sidecar responders');
  });
});
