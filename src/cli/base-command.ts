import { Command } from '@oclif/core';
import { EXIT_USAGE, NeuwerkError } from '../errors.js';

/**
 * The base of every neuwerk command: renders typed errors with their code, next actions and exit
 * code (DESIGN §7) on stderr: one JSON object under `--json` (stdout then stays empty, so a
 * caller never parses an error as the command's answer), else as text.
 */
export abstract class NeuwerkCommand extends Command {
  protected override async catch(err: Error & { exitCode?: number; oclif?: { exit?: number } }): Promise<void> {
    if (err instanceof NeuwerkError) {
      if (this.jsonEnabled()) {
        process.stderr.write(`${JSON.stringify({ ...err.toJSON(), ...(err.actions.length > 0 ? { actions: err.actions } : {}) })}\n`);
      } else {
        process.stderr.write(`error: ${err.message}\n`);
        for (const action of err.actions) process.stderr.write(`  ${action}\n`);
      }
      process.exitCode = err.exitCode;
      return;
    }
    // oclif's own parse errors (unknown flag, bad option value, missing argument) are usage errors.
    if (err.oclif !== undefined && err.oclif.exit !== 0 && err.constructor.name !== 'ExitError') {
      process.stderr.write(`error: ${err.message}\n  See: ${this.config.bin} ${this.id?.replace(/:/g, ' ') ?? ''} --help\n`);
      process.exitCode = EXIT_USAGE;
      return;
    }
    throw err;
  }
}
