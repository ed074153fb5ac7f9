import Foundation
import Synchronization
import XCTest

@testable import TensorCore

/// A oneDNN product keeps a stream and a scratchpad for its thread. Worker threads come and go in a
/// long-running process (libdispatch retires idle workers and starts new ones, so a server that sits idle
/// between requests runs each burst on fresh threads); a thread's state must go with it, not stay behind.
/// fp32 products, so this runs on every CPU.
final class OneDNNThreadStateTests: XCTestCase {
    /// [[1, 2], [3, 4]] squared on the calling thread through oneDNN.
    private static func squareOnThisThread() -> [Float] {
        let a: [Float] = [1, 2, 3, 4]
        var c = [Float](repeating: 0, count: 4)
        a.withUnsafeBytes { pa in
            c.withUnsafeMutableBytes { pc in
                OneDNN.matmul(
                    .f32, transA: false, transB: false, m: 2, n: 2, k: 2, a: pa.baseAddress!, lda: 2,
                    b: pa.baseAddress!, ldb: 2, c: pc.baseAddress!, ldc: 2)
            }
        }
        return c
    }

    /// The live states once at most `limit` remain, waiting up to 10 s for exiting threads to finish. (Other
    /// threads of the test process, such as idle libdispatch workers that ran products in earlier tests, may
    /// retire meanwhile and only lower the count, so the checks are upper bounds.)
    private func threadStates(fallingTo limit: Int) -> Int {
        let deadline = Date().addingTimeInterval(10)
        while OneDNN.threadStates > limit && Date() < deadline { usleep(5_000) }
        return OneDNN.threadStates
    }

    func testAThreadHoldsItsStateWhileAliveAndReleasesItWhenItExits() {
        let results = Mutex<[[Float]]>([])
        let ran = DispatchSemaphore(value: 0), release = DispatchSemaphore(value: 0)
        Thread {
            let c = Self.squareOnThisThread()
            results.withLock { $0.append(c) }
            ran.signal()
            release.wait()
        }.start()
        ran.wait()
        let during = OneDNN.threadStates
        XCTAssertGreaterThanOrEqual(during, 1, "the live thread that ran a product holds a state")
        release.signal()
        XCTAssertLessThanOrEqual(threadStates(fallingTo: during - 1), during - 1, "its state went with it")
        XCTAssertEqual(results.withLock { $0 }, [[7, 10, 15, 22]])
    }

    func testManyShortLivedThreadsLeaveNoStateBehind() {
        let before = OneDNN.threadStates
        let threads = 64
        let results = Mutex<[[Float]]>([])
        let done = DispatchSemaphore(value: 0)
        for _ in 0..<threads {
            Thread {
                let c = Self.squareOnThisThread()
                results.withLock { $0.append(c) }
                done.signal()
            }.start()
        }
        for _ in 0..<threads { done.wait() }
        XCTAssertLessThanOrEqual(threadStates(fallingTo: before), before, "\(threads) threads ran a product and exited")
        XCTAssertEqual(results.withLock { $0 }, Array(repeating: [7, 10, 15, 22], count: threads))
    }
}
