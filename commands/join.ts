import { Args } from '@oclif/core';
import { NeuwerkCommand } from '../src/cli/base-command.js';
import { runNodeInForeground } from '../src/cli/run-node.js';
import { startFlags } from '../src/cli/start-flags.js';
import type { StartFlags } from '../src/config/load.js';

const { join: _join, ...joinFlags } = startFlags;

export default class Join extends NeuwerkCommand {
  static override summary = "Join a cluster through a member's join listener and run the node (the same as start --join).";
  static override description =
    "<seed> is host:port of any member's join listener (its cluster port + 1 by default). The bootstrap token file (--bootstrap-token-path) must hold the cluster's token. Each stage is logged: token accepted, certificates issued, learner added, catching up, voter. On restart the node rejoins from its persisted identity without the token.";
  static override examples = [
    '<%= config.bin %> join 10.0.0.11:9601 --cluster-bind 10.0.0.12:9600 --http-bind 10.0.0.12:8443 --bootstrap-token-path /var/lib/neuwerk/bootstrap-token',
  ];
  static override args = { seed: Args.string({ description: "A member's join listener, host:port.", required: true }) };
  static override flags = joinFlags;

  async run(): Promise<void> {
    const { args, flags } = await this.parse(Join);
    await runNodeInForeground(flags.config, { ...(flags as StartFlags), join: args.seed });
  }
}
