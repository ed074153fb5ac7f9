import CBLAS
import Dispatch

/// Runs `body(i)` for every `i` in `0..<n`, split into `Threads.count` contiguous chunks that run
/// concurrently (Dispatch `concurrentPerform`). Runs inline when there is one worker or one item,
/// so callers can use it unconditionally. `body` must be safe to call concurrently for distinct `i`.
public func parallelFor(_ n: Int, _ body: (Int) -> Void) {
    guard n > 0 else { return }
    let workers = min(Threads.count, n)
    if workers <= 1 {
        for i in 0..<n { body(i) }
        return
    }
    withoutActuallyEscaping(body) { body in
        // concurrentPerform wants a @Sendable closure; the caller promises distinct `i` are independent
        // and the closure does not outlive this call, which is what the box asserts.
        let box = UncheckedSendableBody(body: body)
        DispatchQueue.concurrentPerform(iterations: workers) { w in
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

/// Runs `body` with OpenBLAS pinned to one thread, restoring the previous setting afterwards.
/// Used when our own loop already spreads independent GEMMs over all cores: nested BLAS threads
/// would only oversubscribe the machine.
func withSingleThreadedBLAS<R>(_ body: () throws -> R) rethrows -> R {
    let previous = Threads.count
    if previous <= 1 { return try body() }
    openblas_set_num_threads(1)
    defer { openblas_set_num_threads(Int32(previous)) }
    return try body()
}
