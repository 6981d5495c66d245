// happen: the ES module entry, over the CommonJS one so both share one default runtime.
import happen from './index.js'

export const { initializeHappen, createNode, createNodeArray, node, trace, shutdown, worker, HappenError } = happen
export default happen
