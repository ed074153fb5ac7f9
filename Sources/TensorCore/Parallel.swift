import CKernels
import Dispatch

// Threading model: one pool of workers, ours. OpenBLAS runs single-threaded on whichever thread
// calls it, and `gemm` splits large products over our workers itself. With OpenBLAS's own threads
// next to ours, its idle threads spun in sched_yield while our loops ran (12% of memory attention's
// time) and the two pools oversubscribed the cores whenever one called into the other.

/// Runs `body(i)` for every `i` in `0..<n`, split into `Threads.count` contiguous chunks that run
/// concurrently (Dispatch `concurrentPerform`). Runs inline when there is one worker or one item, or
/// when called from inside another parallel loop, so callers can use it unconditionally.
/// `body` must be safe to call concurrently for distinct `i`.
public func parallelFor(_ n: Int, _ body: (Int) -> Void) {
    guard n > 0 else { return }
    let workers = ragseg_parallel_depth() > 0 ? 1 : min(Threads.count, n)
    if workers <= 1 {
        for i in 0..<n { body(i) }
        return
    }
    withoutActuallyEscaping(body) { body in
        // concurrentPerform wants a @Sendable closure; the caller promises distinct `i` are independent
        // and the closure does not outlive this call, which is what the box asserts.
        let box = UncheckedSendableBody(body: body)
        DispatchQueue.concurrentPerform(iterations: workers) { w in
            ragseg_parallel_enter()
            defer { ragseg_parallel_exit() }
            // Contiguous chunks: neighbouring items usually touch neighbouring memory.
            let start = w * n / workers, end = (w + 1) * n / workers
            for i in start..<end { box.body(i) }
        }
    }
}

private struct UncheckedSendableBody: @unchecked Sendable {
    let body: (Int) -> Void
}

/// Splits `0..<count` into ranges of at least `grain` elements and runs them in parallel.
/// Small loops (under two grains) run inline: thread hand-off costs more than it saves.
@usableFromInline
func parallelRanges(_ count: Int, grain: Int = 1 << 15, _ body: (Range<Int>) -> Void) {
    let chunks = min(Threads.count, count / max(grain, 1))
    if chunks <= 1 {
        if count > 0 { body(0..<count) }
        return
    }
    parallelFor(chunks) { c in
        body((c * count / chunks)..<((c + 1) * count / chunks))
    }
}
