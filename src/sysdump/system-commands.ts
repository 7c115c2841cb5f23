import { execa } from 'execa';

/** Each diagnostic command gets this long before it is stopped (DESIGN §9: each with a timeout). */
export const SYSTEM_COMMAND_TIMEOUT_MS = 5_000;
/** A command that ignores SIGTERM after its timeout is killed this much later. */
export const SYSTEM_COMMAND_KILL_GRACE_MS = 1_000;
/** Output kept per stream; a command that writes more is stopped and its output truncated. */
export const SYSTEM_COMMAND_OUTPUT_MAX_BYTES = 1024 * 1024;

/** One diagnostic command and the archive file that receives its output. */
export interface SystemCommand {
  /** Archive file name under `system/commands/`, without `.txt`. */
  readonly name: string;
  readonly file: string;
  readonly args: readonly string[];
}

/** The commands of DESIGN §9, in the order they are listed there. */
export const SYSTEM_COMMANDS: readonly SystemCommand[] = [
  { name: 'uname-a', file: 'uname', args: ['-a'] },
  { name: 'ip-addr', file: 'ip', args: ['addr'] },
  { name: 'ip-route', file: 'ip', args: ['route'] },
  { name: 'ss-tlnp', file: 'ss', args: ['-tlnp'] },
  { name: 'df-h', file: 'df', args: ['-h'] },
  { name: 'free-m', file: 'free', args: ['-m'] },
  // The Node.js that runs neuwerk, not whichever `node` comes first on PATH.
  { name: 'node-version', file: process.execPath, args: ['--version'] },
];

/** What running one command produced. */
export interface SystemCommandResult {
  readonly command: SystemCommand;
  /** The archive text: command line, exit status, stdout and stderr. */
  readonly text: string;
  /** Why the command counts as failed or missing (for the manifest); null when it exited 0. */
  readonly error: string | null;
}

/** The archive path of a command's output. */
export function systemCommandPath(command: SystemCommand): string {
  return `system/commands/${command.name}.txt`;
}

/**
 * Runs one command with a timeout and bounded output. Never throws: a missing binary, a non-zero
 * exit, a timeout or too much output become the result's `error` (never fatal, DESIGN §9).
 */
export async function runSystemCommand(command: SystemCommand, timeoutMs = SYSTEM_COMMAND_TIMEOUT_MS): Promise<SystemCommandResult> {
  const commandLine = [command.file, ...command.args].join(' ');
  try {
    const result = await execa(command.file, [...command.args], {
      timeout: timeoutMs,
      forceKillAfterDelay: SYSTEM_COMMAND_KILL_GRACE_MS,
      maxBuffer: SYSTEM_COMMAND_OUTPUT_MAX_BYTES,
      reject: false,
      stdin: 'ignore',
      stripFinalNewline: false,
      env: { LC_ALL: 'C' },
    });
    let status: string;
    let error: string | null = null;
    if (result.code === 'ENOENT') {
      status = 'not found';
      error = `${command.file}: command not found`;
    } else if (result.timedOut) {
      status = `timed out after ${timeoutMs} ms`;
      error = `${commandLine}: timed out after ${timeoutMs} ms`;
    } else if (result.isMaxBuffer) {
      status = `stopped: output above ${SYSTEM_COMMAND_OUTPUT_MAX_BYTES} bytes (truncated)`;
      error = `${commandLine}: output above ${SYSTEM_COMMAND_OUTPUT_MAX_BYTES} bytes was truncated`;
    } else if (result.exitCode === undefined) {
      status = result.signal ? `killed by ${result.signal}` : 'failed to start';
      error = `${commandLine}: ${result.shortMessage?.split('\n')[0] ?? status}`;
    } else {
      status = String(result.exitCode);
      if (result.exitCode !== 0) error = `${commandLine}: exit status ${result.exitCode}`;
    }
    return { command, text: render(commandLine, status, String(result.stdout ?? ''), String(result.stderr ?? '')), error };
  } catch (err) {
    const reason = (err as Error).message.split('\n')[0] ?? 'unknown error';
    return { command, text: render(commandLine, 'failed to start', '', reason), error: `${commandLine}: ${reason}` };
  }
}

function render(commandLine: string, status: string, stdout: string, stderr: string): string {
  const block = (text: string): string => (text.length === 0 || text.endsWith('\n') ? text : `${text}\n`);
  return `$ ${commandLine}\nexit_status: ${status}\n--- stdout ---\n${block(stdout)}--- stderr ---\n${block(stderr)}`;
}

/** Runs every command concurrently, so the whole step is bounded by one command's timeout. */
export function runSystemCommands(commands: readonly SystemCommand[] = SYSTEM_COMMANDS, timeoutMs = SYSTEM_COMMAND_TIMEOUT_MS): Promise<SystemCommandResult[]> {
  return Promise.all(commands.map((command) => runSystemCommand(command, timeoutMs)));
}
