/** Version of the manifest layout; bumped when a field changes meaning. */
export const SYSDUMP_FORMAT_VERSION = 1;
/** The manifest's path in the archive (DESIGN §9). */
export const MANIFEST_PATH = 'manifest.json';
/** Fixed-point iterations allowed for the manifest to list its own size; two always suffice. */
const MANIFEST_SIZE_ITERATIONS_MAX = 8;

/** Whether the node answered on its management API while the archive was built. */
export type SysdumpMode = 'running' | 'stopped';

/** One file of the archive as the manifest lists it. */
export interface ManifestEntry {
  readonly path: string;
  readonly size_bytes: number;
}

/** A source that failed or was missing; never fatal, always named (DESIGN §9). */
export interface ManifestError {
  /** The source, e.g. `logs`, `summary/metrics.txt`, `system/commands/ss-tlnp.txt`, `store`. */
  readonly source: string;
  /** What went wrong, for the operator; never contains a secret. */
  readonly error: string;
}

/** `manifest.json`: what the archive holds and what could not be collected. */
export interface SysdumpManifest {
  readonly format_version: number;
  readonly node_id: string | null;
  readonly neuwerk_version: string;
  /** UTC, RFC 3339 with milliseconds. */
  readonly generated_at: string;
  readonly mode: SysdumpMode;
  /** Every file of the archive, this manifest included, in archive order. */
  readonly contents: readonly ManifestEntry[];
  readonly errors: readonly ManifestError[];
}

/** What `buildManifest` needs besides the files. */
export interface ManifestInput {
  readonly nodeId: string | null;
  readonly version: string;
  readonly generatedAt: Date;
  readonly mode: SysdumpMode;
  readonly errors: readonly ManifestError[];
}

/**
 * Builds `manifest.json` for `files` (path and content, archive order, manifest excluded) and
 * returns its bytes. The manifest lists itself first with its own final size: the size is found
 * by iterating until the rendered length stops changing (a digit count can change only a few
 * times), so `contents` is exactly the archive's file list.
 */
export function buildManifest(input: ManifestInput, files: readonly { path: string; content: Buffer }[]): { manifest: SysdumpManifest; bytes: Buffer } {
  const others = files.map((f) => ({ path: f.path, size_bytes: f.content.length }));
  const paths = new Set<string>([MANIFEST_PATH]);
  for (const entry of others) {
    if (paths.has(entry.path)) throw new Error(`sysdump: duplicate archive path ${entry.path}`);
    paths.add(entry.path);
  }
  const errors = [...input.errors].sort((a, b) => a.source.localeCompare(b.source));
  let size = 0;
  for (let iteration = 0; iteration < MANIFEST_SIZE_ITERATIONS_MAX; iteration += 1) {
    const manifest: SysdumpManifest = {
      format_version: SYSDUMP_FORMAT_VERSION,
      node_id: input.nodeId,
      neuwerk_version: input.version,
      generated_at: input.generatedAt.toISOString(),
      mode: input.mode,
      contents: [{ path: MANIFEST_PATH, size_bytes: size }, ...others],
      errors,
    };
    const bytes = Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`, 'utf8');
    if (bytes.length === size) return { manifest, bytes };
    size = bytes.length;
  }
  throw new Error('sysdump: manifest size did not converge');
}
