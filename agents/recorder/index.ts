// Recording core/v1 Events the way client-go's recorder does (see recorder.ts).
export * from './correlator.ts';
export * from './recorder.ts';
