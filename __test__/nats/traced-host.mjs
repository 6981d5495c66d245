// A child process hosting happen nodes over NATS for the tracing tests, with its own
// OpenTelemetry SDK (in-memory exporter).
//   node traced-host.mjs <url> <node id prefix>
// Prints "ready" once its nodes are reachable; exits when its stdin closes.
import { context, trace } from '@opentelemetry/api'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base'
import { initializeHappen } from '../../index.mjs'
import { finishedSpans } from '../fixtures/finished-spans.mjs'
import { serveUntilStdinEnds } from './host-lifecycle.mjs'

const exporter = new InMemorySpanExporter()
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable())
trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }))

const [url, prefix] = process.argv.slice(2)
const happen = await initializeHappen({ transport: { type: 'nats', servers: [url] } })
// Sends on (to a node of the sending process) from inside its flow, after an await.
happen.createNode(`${prefix}-relay`).on('relay', async function relay(event, context) {
  await new Promise((resolve) => setTimeout(resolve, 1))
  const answer = await happen.node(context.node.id).send(event.payload.to, { type: 'relayed' }).return()
  return { answer }
})
happen.createNode(`${prefix}-spans`).on('spans', function spans() {
  return finishedSpans(exporter)
})

await serveUntilStdinEnds(happen)
