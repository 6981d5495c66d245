// Small helpers the test files share.

/** A promise with its resolve and reject in hand. */
export function deferred() {
  let resolve
  let reject
  const promise = new Promise((res, rej) => {
    resolve = res
    reject = rej
  })
  return { promise, resolve, reject }
}

/** Walk a trace tree (events, their branches and children) and collect every event. */
export function traceEvents(tree) {
  const out = []
  const visit = (ev) => {
    if (!ev) return
    out.push(ev)
    for (const child of ev.children ?? []) visit(child)
    for (const branch of ev.branches ?? []) for (const child of branch.children ?? []) visit(child)
  }
  visit(tree)
  return out
}

/** The error a synchronous call throws (fails the test if it does not throw). */
export function thrown(fn) {
  try {
    fn()
  } catch (error) {
    return error
  }
  throw new Error('expected the call to throw')
}

/** The error a promise rejects with (fails the test if it resolves). */
export async function rejection(promise) {
  return promise.then(
    (value) => {
      throw new Error(`expected a rejection, got ${JSON.stringify(value)}`)
    },
    (error) => error,
  )
}
