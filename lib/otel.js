'use strict'

// `@opentelemetry/api`, the optional peer dependency tracing and metrics both go through.
// What holds: the API is required at most once per thread (null when it is not installed), and
// what a registered provider is, is one read of the API's global registration slot, so a
// provider registered later is seen by the next send.

/** Where @opentelemetry/api (major 1) registers its globals: `.trace`, `.metrics`, once a provider is. */
const OTEL_GLOBAL = Symbol.for('opentelemetry.js.api.1')
/** The API once loaded: undefined before the first runtime asks, null when it is not installed. */
let api

/** The API, or null when it is not installed. */
function loadOtelApi() {
  if (api === undefined) {
    try {
      api = require('@opentelemetry/api')
    } catch {
      api = null
    }
  }
  return api
}

/** The provider registered for `kind` ('trace' or 'metrics'), or undefined. */
function registeredProvider(kind) {
  const registered = globalThis[OTEL_GLOBAL]
  return registered === undefined ? undefined : registered[kind]
}

module.exports = { loadOtelApi, registeredProvider }
