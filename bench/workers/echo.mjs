// The raw postMessage round trip of bench/workers.mjs: every message goes straight back.
import { parentPort } from 'node:worker_threads'

parentPort.on('message', (message) => parentPort.postMessage(message))
