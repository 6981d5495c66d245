// Tracing happen with OpenTelemetry: register a tracer provider (here the SDK's console
// exporter), and every flow is a span, parented as the causal tree.
//   npm install @opentelemetry/api @opentelemetry/sdk-trace-base @opentelemetry/context-async-hooks
//   node examples/otel.mjs
import { context, trace } from '@opentelemetry/api'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import { BasicTracerProvider, ConsoleSpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base'
import { initializeHappen } from 'happen'

// What an application's tracing setup does (NodeSDK does the same): a context manager, so
// spans follow awaits, and a global tracer provider. happen finds it; nothing to pass.
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable())
trace.setGlobalTracerProvider(
  new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(new ConsoleSpanExporter())] }),
)

const happen = initializeHappen()
const orders = happen.createNode('orders')
const billing = happen.createNode('billing')

orders.on('order.placed', function validate(event, ctx) {
  return async function charge() {
    const bill = await ctx.node.send(billing, { type: 'bill', payload: event.payload }).return()
    return { order: event.payload.id, bill }
  }
})
billing.on('bill', function invoice(event) {
  if (event.payload.total <= 0) throw new RangeError('nothing to bill')
  return `invoice for ${event.payload.total}`
})

// As inside an instrumented HTTP handler: the send is a child of the request's span.
const tracer = trace.getTracer('shop')
await tracer.startActiveSpan('POST /orders', async (request) => {
  console.log('result:', await orders.send({ type: 'order.placed', payload: { id: 7, total: 42 } }).return())
  request.end()
})
await orders
  .send({ type: 'order.placed', payload: { id: 8, total: 0 } })
  .return()
  .catch((error) => console.log('failed:', error.message))
await happen.shutdown()
