import Foundation
import XCTest

/// Crash points: runs a `ragseg` subcommand under an LD_PRELOAD shim that counts the calls that change
/// files (file creations, writes to regular files, syncs, renames, unlinks, truncations, directory
/// changes) and kills the process with SIGKILL just before the Nth, for N = 1, 2, ... until a run
/// completes (`forEachCrashPoint`). After each kill the caller checks what a crash at that point leaves
/// on disk. The same shim can instead make file writes fail from the Nth on (ENOSPC, EIO or a short
/// write), which is how a full disk is simulated where no small filesystem can be mounted.
enum CrashPoints {
    /// What the shim does at its Nth counted call.
    enum Fault {
        /// SIGKILL before the call runs.
        case kill(at: Int)
        /// That write and every later write to a regular file fail with `errno` (ftruncate too).
        case failWrites(from: Int, errno: Int32)
        /// That write and every later one write half their bytes, like a filling disk.
        case shortWrites(from: Int)
    }

    /// One run under the shim.
    struct Run {
        var result: RunResult
        /// True when the shim killed the process (SIGKILL); false when it exited by itself.
        var killed: Bool
        /// The counted calls in order, "N name detail" (the last one is where a kill happened).
        var calls: [String]
    }

    /// The shim's C source: interposes libc's file-changing calls (liblmdb and Foundation call them
    /// through the dynamic linker; libc's internal calls, e.g. fopen's and fwrite's, are not seen, but
    /// the fsync and rename that make index.faiss durable are).
    static let shimSource = #"""
        #define _GNU_SOURCE
        #include <dlfcn.h>
        #include <errno.h>
        #include <fcntl.h>
        #include <signal.h>
        #include <stdarg.h>
        #include <stdio.h>
        #include <stdlib.h>
        #include <string.h>
        #include <sys/stat.h>
        #include <sys/syscall.h>
        #include <sys/types.h>
        #include <sys/uio.h>
        #include <unistd.h>

        static long kill_at, fail_from, short_from;
        static int fail_errno = ENOSPC, log_fd = -1;
        static long counter;

        __attribute__((constructor)) static void crash_shim_init(void) {
            const char *v;
            if ((v = getenv("RAGSEG_CRASH_KILL_AT"))) kill_at = atol(v);
            if ((v = getenv("RAGSEG_CRASH_FAIL_FROM"))) fail_from = atol(v);
            if ((v = getenv("RAGSEG_CRASH_FAIL_ERRNO"))) fail_errno = atoi(v);
            if ((v = getenv("RAGSEG_CRASH_SHORT_FROM"))) short_from = atol(v);
            if ((v = getenv("RAGSEG_CRASH_LOG")))
                log_fd = (int)syscall(SYS_open, v, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        }

        static int is_regular(int fd) {
            struct stat st;
            return fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
        }

        /* Counts one call; kills before it at kill_at. Returns the call's number. */
        static long crash_point(const char *name, const char *detail) {
            long n = __atomic_add_fetch(&counter, 1, __ATOMIC_SEQ_CST);
            if (log_fd >= 0) {
                char line[600];
                int len = snprintf(line, sizeof line, "%ld %s %s\n", n, name, detail ? detail : "");
                if (len > (int)sizeof line - 1) len = (int)sizeof line - 1;
                syscall(SYS_write, log_fd, line, (size_t)len);
            }
            if (kill_at > 0 && n >= kill_at) raise(SIGKILL);
            return n;
        }

        static const char *fd_detail(int fd, char *buffer, size_t size) {
            char link[64];
            snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
            ssize_t len = readlink(link, buffer, size - 1);
            buffer[len > 0 ? len : 0] = 0;
            return buffer;
        }

        #define REAL(name) static __typeof__(name) *real; if (!real) real = (__typeof__(name) *)dlsym(RTLD_NEXT, #name)

        /* For writes: 0 to write `count` bytes as asked, -1 (errno set) to fail, else how many to write. */
        static ssize_t write_fault(const char *name, int fd, size_t count) {
            if (!is_regular(fd)) return 0;
            char path[512];
            long n = crash_point(name, fd_detail(fd, path, sizeof path));
            if (fail_from > 0 && n >= fail_from) { errno = fail_errno; return -1; }
            if (short_from > 0 && n >= short_from && count > 1) return (ssize_t)(count / 2);
            return 0;
        }

        ssize_t write(int fd, const void *buf, size_t count) {
            REAL(write);
            ssize_t f = write_fault("write", fd, count);
            return f < 0 ? -1 : real(fd, buf, f > 0 ? (size_t)f : count);
        }
        ssize_t pwrite(int fd, const void *buf, size_t count, off_t offset) {
            REAL(pwrite);
            ssize_t f = write_fault("pwrite", fd, count);
            return f < 0 ? -1 : real(fd, buf, f > 0 ? (size_t)f : count, offset);
        }
        ssize_t pwrite64(int fd, const void *buf, size_t count, off_t offset) {
            REAL(pwrite64);
            ssize_t f = write_fault("pwrite", fd, count);
            return f < 0 ? -1 : real(fd, buf, f > 0 ? (size_t)f : count, offset);
        }
        ssize_t writev(int fd, const struct iovec *iov, int iovcnt) {
            REAL(writev);
            size_t total = 0;
            for (int i = 0; i < iovcnt; i++) total += iov[i].iov_len;
            ssize_t f = write_fault("writev", fd, total);
            if (f < 0) return -1;
            if (f > 0 && iovcnt > 0) {
                /* Short: part of the first buffer only, through the real write (not counted again). */
                static __typeof__(write) *plain;
                if (!plain) plain = (__typeof__(write) *)dlsym(RTLD_NEXT, "write");
                return plain(fd, iov[0].iov_base, iov[0].iov_len < (size_t)f ? iov[0].iov_len : (size_t)f);
            }
            return real(fd, iov, iovcnt);
        }
        ssize_t pwritev(int fd, const struct iovec *iov, int iovcnt, off_t offset) {
            REAL(pwritev);
            size_t total = 0;
            for (int i = 0; i < iovcnt; i++) total += iov[i].iov_len;
            ssize_t f = write_fault("pwritev", fd, total);
            return f < 0 ? -1 : real(fd, iov, f > 0 ? 1 : iovcnt, offset);
        }
        int ftruncate(int fd, off_t length) {
            REAL(ftruncate);
            char path[512];
            long n = crash_point("ftruncate", fd_detail(fd, path, sizeof path));
            if (fail_from > 0 && n >= fail_from) { errno = fail_errno; return -1; }
            return real(fd, length);
        }
        int ftruncate64(int fd, off_t length) {
            REAL(ftruncate64);
            char path[512];
            long n = crash_point("ftruncate", fd_detail(fd, path, sizeof path));
            if (fail_from > 0 && n >= fail_from) { errno = fail_errno; return -1; }
            return real(fd, length);
        }
        int fsync(int fd) {
            REAL(fsync);
            char p[512];
            crash_point("fsync", fd_detail(fd, p, sizeof p));
            return real(fd);
        }
        int fdatasync(int fd) {
            REAL(fdatasync);
            char p[512];
            crash_point("fdatasync", fd_detail(fd, p, sizeof p));
            return real(fd);
        }
        int msync(void *addr, size_t length, int flags) {
            REAL(msync);
            crash_point("msync", "");
            return real(addr, length, flags);
        }
        int rename(const char *from, const char *to) { REAL(rename); crash_point("rename", to); return real(from, to); }
        int renameat(int fd1, const char *from, int fd2, const char *to) {
            REAL(renameat);
            crash_point("renameat", to);
            return real(fd1, from, fd2, to);
        }
        int renameat2(int fd1, const char *from, int fd2, const char *to, unsigned flags) {
            REAL(renameat2); crash_point("renameat2", to); return real(fd1, from, fd2, to, flags);
        }
        int unlink(const char *path) { REAL(unlink); crash_point("unlink", path); return real(path); }
        int unlinkat(int fd, const char *path, int flags) {
            REAL(unlinkat);
            crash_point("unlinkat", path);
            return real(fd, path, flags);
        }
        int rmdir(const char *path) { REAL(rmdir); crash_point("rmdir", path); return real(path); }
        int mkdir(const char *path, mode_t mode) { REAL(mkdir); crash_point("mkdir", path); return real(path, mode); }
        int mkdirat(int fd, const char *path, mode_t mode) {
            REAL(mkdirat);
            crash_point("mkdirat", path);
            return real(fd, path, mode);
        }
        int link(const char *from, const char *to) { REAL(link); crash_point("link", to); return real(from, to); }

        /* An open that creates a file is a crash point; opening an existing one (O_CREAT or not) is not. */
        static void creation_point(int dirfd, const char *path, int flags) {
            if ((flags & O_CREAT) && faccessat(dirfd, path, F_OK, 0) != 0) crash_point("create", path);
        }
        #define OPEN_MODE(flags) mode_t mode = 0; \
            if ((flags) & (O_CREAT | O_TMPFILE)) { \
                va_list ap; va_start(ap, flags); mode = (mode_t)va_arg(ap, int); va_end(ap); \
            }
        int open(const char *path, int flags, ...) {
            REAL(open); OPEN_MODE(flags); creation_point(AT_FDCWD, path, flags); return real(path, flags, mode);
        }
        int open64(const char *path, int flags, ...) {
            REAL(open64); OPEN_MODE(flags); creation_point(AT_FDCWD, path, flags); return real(path, flags, mode);
        }
        int openat(int dirfd, const char *path, int flags, ...) {
            REAL(openat); OPEN_MODE(flags); creation_point(dirfd, path, flags); return real(dirfd, path, flags, mode);
        }
        int openat64(int dirfd, const char *path, int flags, ...) {
            REAL(openat64); OPEN_MODE(flags); creation_point(dirfd, path, flags); return real(dirfd, path, flags, mode);
        }
        int creat(const char *path, mode_t mode) {
            REAL(creat);
            creation_point(AT_FDCWD, path, O_CREAT);
            return real(path, mode);
        }
        """#

    /// The compiled shim (built once per test process with the system C compiler).
    static func shimLibrary() throws -> String {
        try builtShim.get()
    }

    private static let builtShim: Result<String, Error> = Result {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ragseg-crash-shim-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let source = dir + "/shim.c", library = dir + "/shim.so"
        try Data(shimSource.utf8).write(to: URL(fileURLWithPath: source))
        guard
            let compiler = ["/usr/bin/cc", "/usr/bin/gcc", "/usr/bin/clang"].first(where: {
                FileManager.default.isExecutableFile(atPath: $0)
            })
        else {
            throw XCTSkip("no C compiler (cc) to build the crash-point shim")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: compiler)
        process.arguments = ["-shared", "-fPIC", "-O1", "-Wall", "-o", library, source, "-ldl"]
        let result = try runToCompletion(process)
        guard result.status == 0 else {
            throw NSError(
                domain: "CrashPoints", code: 1,
                userInfo: [NSLocalizedDescriptionKey: "shim build failed: \(result.stderr)"])
        }
        return library
    }

    /// Runs `ragseg arguments` once under the shim with `fault` (nil: only count the calls).
    static func run(_ arguments: [String], fault: Fault?) throws -> Run {
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("ragseg-crash-log-\(UUID().uuidString)")
            .path
        defer { try? FileManager.default.removeItem(atPath: log) }
        var environment = ProcessInfo.processInfo.environment
        environment["LD_PRELOAD"] = try shimLibrary()
        environment["RAGSEG_CRASH_LOG"] = log
        switch fault {
        case .kill(let n): environment["RAGSEG_CRASH_KILL_AT"] = String(n)
        case .failWrites(let n, let code):
            environment["RAGSEG_CRASH_FAIL_FROM"] = String(n)
            environment["RAGSEG_CRASH_FAIL_ERRNO"] = String(code)
        case .shortWrites(let n): environment["RAGSEG_CRASH_SHORT_FROM"] = String(n)
        case nil: break
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try ragsegExecutable())
        process.arguments = arguments
        process.environment = environment
        let result = try runToCompletion(process)
        let killed = process.terminationReason == .uncaughtSignal && process.terminationStatus == SIGKILL
        let calls = ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
        return Run(result: result, killed: killed, calls: calls)
    }

    /// Runs `ragseg arguments` killed before its 1st, 2nd, ... counted call until a run completes.
    /// `prepare` restores the starting state before every run (each run starts from the same files);
    /// `check(n, call)` inspects what the kill before call n (its log line) left. Returns the number
    /// of crash points (the completing run's count of calls). Fails the test when no call was counted
    /// (the shim saw nothing, so nothing was tested) or a run died of anything but the shim's SIGKILL.
    @discardableResult
    static func forEachCrashPoint(
        _ arguments: [String], prepare: () throws -> Void,
        check: (_ point: Int, _ call: String) throws -> Void,
        file: StaticString = #filePath, line: UInt = #line
    ) throws -> Int {
        var point = 1
        while point < 10_000 {
            try prepare()
            let run = try run(arguments, fault: .kill(at: point))
            if !run.killed {
                XCTAssertEqual(run.result.status, 0, "uninterrupted run: \(run.result.stderr)", file: file, line: line)
                XCTAssertEqual(
                    run.calls.count, point - 1, "the completing run made exactly the calls counted so far", file: file,
                    line: line)
                XCTAssertGreaterThan(point, 1, "the shim counted no call: nothing was tested", file: file, line: line)
                return point - 1
            }
            XCTAssertEqual(run.calls.count, point, "killed before call \(point)", file: file, line: line)
            try check(point, run.calls.last ?? "")
            point += 1
        }
        XCTFail("no run completed within \(point) crash points", file: file, line: line)
        return point
    }

    /// Copies directory `from` over `to` (removing `to` first): a bank's starting state for each run.
    static func restore(_ from: String, to: String) throws {
        if FileManager.default.fileExists(atPath: to) { try FileManager.default.removeItem(atPath: to) }
        try FileManager.default.copyItem(atPath: from, toPath: to)
    }
}
