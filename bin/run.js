#!/usr/bin/env node
// oclif entry point: commands are loaded from dist/commands (built by `npm install` / `npm run build`).
import { execute } from '@oclif/core';

await execute({ dir: import.meta.url });
