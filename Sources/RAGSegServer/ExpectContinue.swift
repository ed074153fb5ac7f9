// `Expect: 100-continue` (RFC 9110 §10.1.1): curl and libcurl send it for bodies over 1 MiB and then wait
// a second for the server's go-ahead before sending the body. Hummingbird 2 does not answer it, so this
// handler does: "100 Continue" when the declared length is within the upload limit (or not declared);
// otherwise no go-ahead, and the route answers 413 from the Content-Length without reading the body.
import HTTPTypes
import NIOCore
import NIOHTTPTypes

final class ExpectContinueHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundOut = HTTPResponsePart

    let maxBodyBytes: Int

    init(maxBodyBytes: Int) { self.maxBodyBytes = maxBodyBytes }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head(let request) = unwrapInboundIn(data),
            let expect = request.headerFields[.expect], expect.lowercased() == "100-continue"
        {
            let length = request.headerFields[.contentLength].flatMap { Int($0) }
            if length.map({ $0 <= maxBodyBytes }) ?? true {
                context.writeAndFlush(wrapOutboundOut(.head(HTTPResponse(status: .continue))), promise: nil)
            }
        }
        context.fireChannelRead(data)
    }
}
