// Progress of long commands (`index add`, `index merge`) on stderr.
import Foundation

/// Progress on stderr: a redrawn bar with rate and ETA on a terminal, plain lines otherwise.
final class ProgressReporter {
    let total: Int
    let quiet: Bool
    /// What is counted: "cases", or "slices" for volumes.
    let unit: String
    let isTerminal = isatty(2) == 1
    let start = Date()
    var lastLine = Date.distantPast
    /// The count last shown: a forced final update repeats nothing already on screen.
    var lastShown: Int?

    init(total: Int, quiet: Bool, unit: String = "cases") {
        self.total = total
        self.quiet = quiet
        self.unit = unit
    }

    func update(_ done: Int, force: Bool = false) {
        guard !quiet else { return }
        let now = Date()
        if !force && now.timeIntervalSince(lastLine) < (isTerminal ? 0.1 : 5) { return }
        if force && done == lastShown { return }
        lastLine = now
        lastShown = done
        let elapsed = now.timeIntervalSince(start)
        let rate = elapsed > 0 ? Double(done) / elapsed : 0
        let eta = rate > 0 ? Double(total - done) / rate : 0
        let etaText = String(format: "%d:%02d", Int(eta) / 60, Int(eta) % 60)
        if isTerminal {
            let width = 30
            let filled = total > 0 ? width * done / total : width
            let bar = String(repeating: "=", count: filled) + String(repeating: " ", count: width - filled)
            FileHandle.standardError.write(
                Data(String(format: "\r[%@] %d/%d  %.1f %@/s  ETA %@", bar, done, total, rate, unit, etaText).utf8))
            if done == total { FileHandle.standardError.write(Data("\n".utf8)) }
        } else {
            printError(String(format: "%d/%d %@, %.1f %@/s, ETA %@", done, total, unit, rate, unit, etaText))
        }
    }
}
