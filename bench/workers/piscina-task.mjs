// Piscina's task for bench/workers.mjs: { ms } spins, { echo } answers at once.
import { spin } from './spin.mjs'

export default function task(input) {
  return input.ms === undefined ? input.echo : spin(input.ms)
}
