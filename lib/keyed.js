'use strict'

// Objects keyed by node id. Every id is an own, enumerable key, in insertion order, even an
// id such as '__proto__' whose plain assignment would set the object's prototype instead.

/** Sets `object[key] = value` as an own data property, whatever the key. */
function setKey(object, key, value) {
  if (key === '__proto__') {
    Object.defineProperty(object, key, { value, writable: true, enumerable: true, configurable: true })
  } else {
    object[key] = value
  }
}

module.exports = { setKey }
