// `serve --read-only`: a replica serving a bank snapshot (`ragseg index snapshot`) behind a load balancer, next
// to one writable primary. Segmenting works as usual; every route that would change the bank answers 405.
import Hummingbird
import NIOCore

extension SegmentationServer {
    /// The routes that write to the bank on a writable server, with every method a client might use to
    /// write there (POST adds a case; no route removes one today, so DELETE/PUT/PATCH are refused alike
    /// rather than 404, which would read as "no such case").
    static let writeRoutes: [(path: RouterPath, methods: [HTTPRequest.Method])] = [
        ("/cases", [.post, .put, .patch, .delete])
    ]

    func addReadOnlyRefusals(to router: Router<BasicRequestContext>) {
        for (path, methods) in Self.writeRoutes {
            for method in methods {
                router.on(path, method: method) { [gate] request, _ in
                    try await gate.admit { Self.readOnlyRefusal(request) }
                }
            }
        }
    }

    /// 405 with an empty `Allow`: the resource accepts no method on a replica (RFC 9110 15.5.6 lets Allow be
    /// empty for a resource disabled by configuration). The body is read by nobody and discarded by the server.
    static func readOnlyRefusal(_ request: Request) -> Response {
        var response = jsonResponse(
            [
                "error":
                    """
                this server is a read-only replica (serve --read-only): \(request.method.rawValue) \
                \(request.uri.path) is refused; send writes to the primary server
                """
            ], status: .methodNotAllowed)
        response.headers[.allow] = ""
        return response
    }
}
