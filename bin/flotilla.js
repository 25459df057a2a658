#!/usr/bin/env node
// Entry point for `npx flotilla`: registers the tsx loader so the TypeScript
// sources run as they are, then hands over to the CLI.
import { register } from 'tsx/esm/api';
register();
await import('./cli.ts');
