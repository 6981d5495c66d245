// Metrics scraped by Prometheus (issue 25): examples/metrics/prometheus.mjs runs as its own
// process, and its /metrics page is read over real HTTP after its fan-out with one failure.
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'

const example = fileURLToPath(new URL('../examples/metrics/prometheus.mjs', import.meta.url))
const root = fileURLToPath(new URL('..', import.meta.url))
let child = null

afterAll(() => {
  if (child !== null && child.exitCode === null) child.kill('SIGTERM')
})

/** Starts the example; resolves with what it printed once it names its /metrics URL. */
function startExample() {
  child = spawn(process.execPath, [example], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] })
  return new Promise((resolve, reject) => {
    let out = ''
    child.stdout.on('data', (chunk) => {
      out += chunk
      const url = /metrics at (http:\/\/\S+\/metrics)/.exec(out)
      if (url !== null) resolve({ out, url: url[1] })
    })
    child.on('exit', (code) => reject(new Error(`the example exited with code ${code}: ${out}`)))
  })
}

/** The value of the sample `name{labels...}` in a Prometheus text page (labels given must all match). */
function sample(page, name, labels) {
  const lines = page.split('\n').filter((line) => line.startsWith(`${name}{`))
  const found = lines.filter((line) => Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`)))
  expect(found, `${name} ${JSON.stringify(labels)}`).toHaveLength(1)
  return Number(found[0].slice(found[0].lastIndexOf(' ') + 1))
}

describe('the Prometheus example', () => {
  it('serves the counts of its fan-out with one failure on /metrics', async () => {
    const { out, url } = await startExample()
    expect(out).toContain('order 2: payment rejected')
    const response = await fetch(url)
    expect(response.status).toBe(200)
    const page = await response.text()

    expect(sample(page, 'happen_event_sent_total', { happen_event_type: 'order' })).toBe(3)
    for (const node of ['inventory', 'payment', 'shipping']) {
      expect(sample(page, 'happen_flow_delivered_total', { happen_node: node, happen_event_type: 'order' })).toBe(3)
      expect(sample(page, 'happen_flow_active', { happen_node: node })).toBe(0)
    }
    expect(page.match(/^happen_flow_failures_total\{/gm)).toHaveLength(1)
    expect(
      sample(page, 'happen_flow_failures_total', {
        happen_node: 'payment',
        happen_event_type: 'order',
        error_type: 'PaymentDeclined',
      }),
    ).toBe(1)
    const durations = (node, outcome) =>
      sample(page, 'happen_flow_duration_count', { happen_node: node, happen_outcome: outcome })
    expect(durations('inventory', 'ok')).toBe(3)
    expect(durations('payment', 'ok')).toBe(2)
    expect(durations('payment', 'error')).toBe(1)
    // Payment waited 10 ms for each order; the histogram's sum says so.
    expect(
      sample(page, 'happen_flow_duration_sum', { happen_node: 'payment', happen_outcome: 'ok' }),
    ).toBeGreaterThanOrEqual(0.018)
    // No payload reaches a label.
    expect(page).not.toContain('expired')
  })
})
