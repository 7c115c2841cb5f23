import { Header, Pack, ReadEntry } from 'tar';
import { NeuwerkError } from '../errors.js';
import { findSecretLeaks, type KnownSecrets } from './redaction.js';

/** Mode of every file inside the archive: the content is for the operator who asked for it. */
export const ARCHIVE_FILE_MODE = 0o600;
/** Mode of directory entries inside the archive. */
export const ARCHIVE_DIRECTORY_MODE = 0o700;

/** One file of an archive, built in memory by the collector (never copied from disk). */
export interface ArchiveFile {
  /** Relative POSIX path inside the archive, e.g. `summary/state.json`. */
  readonly path: string;
  readonly content: Buffer;
}

/**
 * The final scan (DESIGN §9): re-checks every entry for PEM private-key markers, JWT-shaped
 * strings, unredacted bearer credentials and the node's known secrets. A finding means a
 * scrubber missed something; the archive is refused, naming the entries and kinds but never the
 * secret.
 */
export function assertNoSecrets(files: readonly ArchiveFile[], known?: KnownSecrets): void {
  const problems: string[] = [];
  for (const file of files) {
    for (const finding of findSecretLeaks(file.content, known)) {
      problems.push(`${file.path}: ${finding.kind}${finding.label === null ? '' : ` (${finding.label})`}`);
    }
  }
  if (problems.length > 0) {
    throw new NeuwerkError('NW_ERR_SYSDUMP_SECRET_FOUND', `sysdump refused: the final secret scan found ${problems.length} problem(s): ${problems.join('; ')}`, {
      actions: ['No archive was written. This is a bug in neuwerk\'s redaction; report it with the entry names above (they contain no secret).'],
      detail: { problems },
    });
  }
}

function directoriesOf(files: readonly ArchiveFile[]): string[] {
  const directories = new Set<string>();
  for (const file of files) {
    const parts = file.path.split('/');
    for (let i = 1; i < parts.length; i += 1) directories.add(`${parts.slice(0, i).join('/')}/`);
  }
  return [...directories].sort();
}

function checkPath(path: string): void {
  if (path.length === 0 || path.startsWith('/') || path.split('/').some((part) => part === '..' || part === '.' || part === '')) {
    throw new Error(`sysdump: invalid archive path ${JSON.stringify(path)}`);
  }
}

/**
 * Packs in-memory files into a gzip'd tar (the `tar` package; portable headers, no owner names),
 * after the final secret scan. Directory entries are added for every parent, plus `extraDirectories`
 * (e.g. an empty `logs/`), so the layout is the same whatever was collected.
 */
export async function packArchive(files: readonly ArchiveFile[], options: { mtime: Date; known?: KnownSecrets; extraDirectories?: readonly string[] }): Promise<Buffer> {
  for (const file of files) checkPath(file.path);
  assertNoSecrets(files, options.known);
  const pack = new Pack({ gzip: true, portable: true });
  const chunks: Buffer[] = [];
  pack.on('data', (chunk: Buffer) => chunks.push(chunk));
  const finished = new Promise<void>((resolve, reject) => {
    pack.on('end', () => resolve());
    pack.on('error', (err: unknown) => reject(err instanceof Error ? err : new Error(String(err))));
  });
  const directories = new Set([...directoriesOf(files), ...(options.extraDirectories ?? []).map((d) => (d.endsWith('/') ? d : `${d}/`))]);
  for (const path of [...directories].sort()) {
    const entry = new ReadEntry(new Header({ path, mode: ARCHIVE_DIRECTORY_MODE, size: 0, mtime: options.mtime, type: 'Directory' }));
    pack.write(entry);
    entry.end();
  }
  for (const file of files) {
    const entry = new ReadEntry(new Header({ path: file.path, mode: ARCHIVE_FILE_MODE, size: file.content.length, mtime: options.mtime, type: 'File' }));
    pack.write(entry);
    entry.end(file.content);
  }
  pack.end();
  await finished;
  return Buffer.concat(chunks);
}
