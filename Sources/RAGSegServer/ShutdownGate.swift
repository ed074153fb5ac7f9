// Shutdown without dropped requests. Closing the listener at once (Hummingbird's graceful shutdown) lost
// requests a client had fully sent: connections still in the kernel's accept queue were reset and
// connections whose request had not been read yet were closed as idle. So a stop first drains: the
// listener stays open, every request that reaches a handler after the stop began gets 503 with a JSON
// error (unprocessed), requests admitted before run to the end, and only once nothing is in flight and no
// request has arrived for `quietPeriod` does the graceful shutdown close the listener.
import Dispatch
import Hummingbird
import Synchronization

final class ShutdownGate: Sendable {
    struct State {
        var draining = false
        var inFlight = 0
        var lastArrival = DispatchTime.now()
    }
    private let state = Mutex(State())
    /// How long the server must see no new request before it closes the listener.
    let quietPeriod: Double
    /// Longest wait for such a quiet moment (requests in flight are always waited for).
    let longestDrain: Double

    init(quietPeriod: Double = 0.5, longestDrain: Double = 10) {
        self.quietPeriod = quietPeriod
        self.longestDrain = longestDrain
    }

    static let refusal =
        "the server is shutting down; this request was not processed (send it again to a running server)"

    /// Runs `handler` for a request admitted before the stop began; answers 503 (unprocessed) after.
    func admit(_ handler: () async throws -> Response) async throws -> Response {
        let admitted = state.withLock { s -> Bool in
            s.lastArrival = .now()
            if s.draining { return false }
            s.inFlight += 1
            return true
        }
        guard admitted else {
            var response = jsonResponse(["error": Self.refusal], status: .serviceUnavailable)
            response.headers[.connection] = "close"
            return response
        }
        defer { state.withLock { $0.inFlight -= 1 } }
        return try await handler()
    }

    /// Starts draining; returns once no admitted request is in flight and the server has been quiet for
    /// `quietPeriod` (or `longestDrain` has passed with requests still arriving). False if already draining.
    func drain() async -> Bool {
        let first = state.withLock { s -> Bool in
            defer { s.draining = true }
            return !s.draining
        }
        guard first else { return false }
        let start = DispatchTime.now()
        func seconds(since t: DispatchTime) -> Double {
            Double(DispatchTime.now().uptimeNanoseconds - t.uptimeNanoseconds) / 1e9
        }
        while true {
            let (inFlight, last) = state.withLock { ($0.inFlight, $0.lastArrival) }
            if inFlight == 0 && (seconds(since: last) >= quietPeriod || seconds(since: start) >= longestDrain) {
                return true
            }
            try? await Task.sleep(nanoseconds: 20_000_000)
        }
    }
}
