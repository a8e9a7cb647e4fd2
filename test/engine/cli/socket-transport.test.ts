/** The CLI's socket transport: a helper that breaks the framing fails the client's calls with EPROTO at once. */
import { afterEach, describe, expect, it } from 'vitest';
import { SocketTransport } from '../../../engine/cli/socket-transport.js';
import { HelperClient } from '../../../engine/protocol/client.js';
import { MAX_LINE_LENGTH } from '../../../engine/protocol/limits.js';
import { misbehavingHelper, oversizedThenValid } from '../../helpers/misbehaving-helper.js';
import type { MisbehavingHelper } from '../../helpers/misbehaving-helper.js';

let helper: MisbehavingHelper | null = null;
afterEach(async () => {
  await helper?.close();
  helper = null;
});

describe('SocketTransport (CLI)', () => {
  it('a line over the limit from the helper is a protocol violation: EPROTO, and the valid answer behind it is not taken', async () => {
    helper = await misbehavingHelper(oversizedThenValid(MAX_LINE_LENGTH));
    const client = new HelperClient(await SocketTransport.connect(helper.socketPath), { timeoutMs: 60_000 });
    await expect(client.call('version', {})).rejects.toMatchObject({
      code: 'protocol_violation',
      errno: 'EPROTO',
      message: `helper protocol violation: the helper sent a line longer than ${MAX_LINE_LENGTH} characters`,
    });
    expect(client.closed).toBe(true);
  });
});
