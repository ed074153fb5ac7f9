// The answer to an error of RAGSeg's own that no handler turned into a `ServerError`: the machine's faults (a
// full temporary folder or disk, a full LMDB map) and the bank's. Hummingbird answers such an error 500 with an
// empty body and logs it at debug level, so neither the client nor the operator learned that, say, the temporary
// folder had filled up. Here it gets the usual {"error": reason} body, 507 Insufficient Storage when the server
// ran out of room (nothing was stored; the same request can succeed once there is space), 500 otherwise, and a
// line on the server's standard error. Other errors (the HTTP layer's own: a broken request, a closed
// connection) are left to Hummingbird, which knows when no answer can be written.
import Foundation
import HTTPTypes
import Hummingbird
import RAGSegIO
import SupportBank

struct ErrorReplies<Context: RequestContext>: RouterMiddleware {
    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as any HTTPResponseError {
            throw error  // a ServerError or Hummingbird's own (404, 405): already an answer
        } catch {
            guard let reply = UnansweredError.reply(to: error) else { throw error }
            FileHandle.standardError.write(
                Data("ragseg serve: \(request.method) \(request.uri.path): \(reply.status) \(error)\n".utf8))
            let status = reply.status == 507 ? HTTPResponse.Status.insufficientStorage : .internalServerError
            return jsonResponse(["error": reply.message], status: status)
        }
    }
}

/// The status (507 or 500) and message for an error of RAGSeg's own that no handler answered; nil for others.
enum UnansweredError {
    static func reply(to error: any Error) -> (status: Int, message: String)? {
        switch error {
        case let error as ScratchSpaceError:
            return (507, "the server has no room for this request's temporary files: \(error.message)")
        case let error as LMDBError:
            return (error.isMapFull || error.isDiskFull ? 507 : 500, error.description)
        case is BankError, is RAGSegIOError:
            return (500, "\(error)")
        default:
            return nil
        }
    }
}

extension HTTPResponse.Status {
    /// RFC 4918: the server cannot store what the request needs (its disk or the bank's map is full).
    static var insufficientStorage: Self { .init(code: 507, reasonPhrase: "Insufficient Storage") }
}
