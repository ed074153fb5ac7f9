// Sine position encoding of the FPN levels (`PositionEmbeddingSine`, normalize, scale 2*pi,
// temperature 10000; sam2.md §4.2). Input-independent: computed once per map size.
import Foundation
import TensorCore

public enum SinePositionEncoding {
    /// [channels, height, width]: the first channels/2 encode the row (y), the rest the column (x);
    /// within each half, even channels are sin and odd ones cos of position / 10000^(2*floor(d/2)/(channels/2)).
    /// Arithmetic in Float like the reference (positions (i+1)/(n+1e-6)*2*pi in fp32).
    public static func encoding(channels: Int, height: Int, width: Int) -> Tensor {
        precondition(channels % 2 == 0, "sine position encoding needs an even channel count")
        let features = channels / 2
        let scale = Float(2 * Double.pi)
        let frequencies: [Float] = (0..<features).map { d in
            powf(10000, Float(2 * (d / 2)) / Float(features))
        }
        func embed(_ i: Int, _ n: Int) -> Float { Float(i + 1) / (Float(n) + 1e-6) * scale }
        return Tensor(shape: [channels, height, width]) { out in
            for d in 0..<features {
                let f = frequencies[d]
                let useSin = d % 2 == 0
                for y in 0..<height {
                    let ay = embed(y, height) / f
                    let vy = useSin ? sinf(ay) : cosf(ay)
                    let rowY = out.baseAddress! + (d * height + y) * width
                    let rowX = out.baseAddress! + ((features + d) * height + y) * width
                    for x in 0..<width {
                        let ax = embed(x, width) / f
                        rowY[x] = vy
                        rowX[x] = useSin ? sinf(ax) : cosf(ax)
                    }
                }
            }
        }
    }
}
