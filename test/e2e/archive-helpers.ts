import { mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { extract } from 'tar';

/** Extracts a tar.gz with the tar package into `into` and returns every file by relative path. */
export async function unpackArchive(archive: string, into: string): Promise<Map<string, Buffer>> {
  mkdirSync(into, { recursive: true });
  await extract({ file: archive, cwd: into });
  const files = new Map<string, Buffer>();
  const walk = (path: string): void => {
    for (const name of readdirSync(path)) {
      const full = join(path, name);
      if (statSync(full).isDirectory()) walk(full);
      else files.set(relative(into, full), readFileSync(full));
    }
  };
  walk(into);
  return files;
}
