// Metrics of happen scraped by Prometheus: register a meter provider whose reader is the
// Prometheus exporter, and happen's instruments appear on its /metrics page.
//   npm install @opentelemetry/api @opentelemetry/sdk-metrics @opentelemetry/exporter-prometheus
//   node examples/metrics/prometheus.mjs [port]      (default: a free port)
//   curl http://127.0.0.1:<port>/metrics
// It fans three orders out to three nodes (payment declines the second one), prints the
// /metrics URL and serves it until stopped (Ctrl-C).
import http from 'node:http'
import { metrics } from '@opentelemetry/api'
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus'
import { MeterProvider } from '@opentelemetry/sdk-metrics'
import { createNodeArray, initializeHappen } from 'happen'

// What an application's metrics setup does (NodeSDK does the same): a global meter provider
// with a reader. happen finds it; nothing to pass. The exporter serves its page from our own
// server here, so the example can listen on a free port.
const exporter = new PrometheusExporter({ preventServerStart: true })
metrics.setGlobalMeterProvider(new MeterProvider({ readers: [exporter] }))

const server = http.createServer((request, response) => {
  if (request.url === '/metrics') return exporter.getMetricsRequestHandler(request, response)
  response.statusCode = 404
  response.end()
})
await new Promise((resolve) => server.listen(Number(process.argv[2] ?? 0), '127.0.0.1', resolve))

class PaymentDeclined extends Error {
  name = 'PaymentDeclined'
}

const happen = initializeHappen()
const shop = createNodeArray(['inventory', 'payment', 'shipping'].map((id) => happen.createNode(id)))
shop.on('order', async function handle(event, ctx) {
  if (ctx.node.id === 'payment') {
    await new Promise((resolve) => setTimeout(resolve, 10)) // the card network answers
    if (event.payload.card === 'expired') throw new PaymentDeclined(`order ${event.payload.id}: card expired`)
  }
  return `${ctx.node.id} ok`
})

const orders = [
  { id: 1, card: 'valid' },
  { id: 2, card: 'expired' },
  { id: 3, card: 'valid' },
]
for (const order of orders) {
  const outcome = await shop.send({ type: 'order', payload: order }).return({ settled: true })
  console.log(`order ${order.id}: payment ${outcome.payment.status}`)
}

console.log(`metrics at http://127.0.0.1:${server.address().port}/metrics`)

// Serve until stopped.
const stop = async () => {
  server.close()
  await happen.shutdown()
  process.exit(0)
}
process.on('SIGINT', stop)
process.on('SIGTERM', stop)
