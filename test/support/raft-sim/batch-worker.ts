// Worker thread body for batch.ts: runs its share of the seeds, posts the report.
import { parentPort, workerData } from 'node:worker_threads';
import { type BatchOptions, runBatchHere } from './batch.ts';

const { seeds, options } = workerData as { seeds: number[]; options: BatchOptions };
parentPort!.postMessage(runBatchHere(seeds, options));
