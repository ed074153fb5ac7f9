// The parameterised layers every model here is built from, PyTorch semantics and weight layouts. Each is
// its parameters plus a call that forwards to the TensorCore kernel, so a model written with them runs the
// same kernels, in the same order, as one calling the kernels directly.

/// `nn.Linear` over the last axis: weight [out, in] (PyTorch layout, read transposed by the GEMM), bias [out].
public struct Linear: Sendable {
    public let weight: Tensor
    public let bias: Tensor?
    /// The weight as bf16, made on the first product under `Precision.bf16`.
    public let packed = BFloat16Weight()

    public init(weight: Tensor, bias: Tensor?) {
        self.weight = weight
        self.bias = bias
    }

    /// Reads `weight` [output, input] and (when `bias`) `bias` [output] from `scope`.
    public init(_ scope: WeightScope, input: Int, output: Int, bias hasBias: Bool = true) throws {
        weight = try scope.tensor("weight", shape: [output, input])
        bias = hasBias ? try scope.tensor("bias", shape: [output]) : nil
    }

    /// The bf16 weight when products run in bf16, else nil.
    var weightBF16: [UInt16]? { Precision.current == .bf16 ? packed.bits(of: weight) : nil }

    public var inputDim: Int { weight.dim(1) }
    public var outputDim: Int { weight.dim(0) }

    /// x [..., in] -> [..., out], one GEMM.
    public func callAsFunction(_ x: Tensor) -> Tensor { linear(x, weight: weight, bias: bias, weightBF16: weightBF16) }

    /// residual += self(x), with no temporary output.
    public func add(_ x: Tensor, into residual: inout Tensor) {
        addLinear(into: &residual, x, weight: weight, bias: bias, weightBF16: weightBF16)
    }

    /// Rows `range` of the output features: one of several projections fused in one weight (q, k, v).
    public func outputs(_ range: Range<Int>) -> Linear {
        Linear(weight: sliced(weight, axis: 0, range: range), bias: bias.map { sliced($0, axis: 0, range: range) })
    }
}

/// `nn.LayerNorm` (biased variance) over the last axis, or `LayerNorm2d` over the channels of [C, H, W].
public struct LayerNorm: Sendable {
    public let weight: Tensor
    public let bias: Tensor
    public let eps: Float

    public init(weight: Tensor, bias: Tensor, eps: Float) {
        self.weight = weight
        self.bias = bias
        self.eps = eps
    }

    /// Reads `weight` and `bias`, both [dim].
    public init(_ scope: WeightScope, dim: Int, eps: Float) throws {
        weight = try scope.tensor("weight", shape: [dim])
        bias = try scope.tensor("bias", shape: [dim])
        self.eps = eps
    }

    /// Over the last axis of tokens [..., C].
    public func callAsFunction(_ x: Tensor) -> Tensor { layerNorm(x, weight: weight, bias: bias, eps: eps) }
    /// The same, rounded to bf16, for bf16 products to read (`layerNormBFloat16`).
    public func bfloat16(_ x: Tensor) -> BFloat16Tensor { layerNormBFloat16(x, weight: weight, bias: bias, eps: eps) }
    /// Over C of a [C, H, W] map (`LayerNorm2d`).
    public func channels(_ x: Tensor) -> Tensor { layerNorm2d(x, weight: weight, bias: bias, eps: eps) }
}

/// `nn.Conv2d` on a [C, H, W] map: weight [O, C/groups, kh, kw], bias [O].
public struct Conv2d: Sendable {
    public let weight: Tensor
    public let bias: Tensor?
    public let stride: Int
    public let padding: Int
    public let groups: Int

    public init(weight: Tensor, bias: Tensor?, stride: Int = 1, padding: Int = 0, groups: Int = 1) {
        self.weight = weight
        self.bias = bias
        self.stride = stride
        self.padding = padding
        self.groups = groups
    }

    /// Reads a square-kernel convolution's `weight` and `bias`.
    public init(
        _ scope: WeightScope, input: Int, output: Int, kernel: Int, stride: Int = 1, padding: Int = 0,
        groups: Int = 1
    ) throws {
        self.init(
            weight: try scope.tensor("weight", shape: [output, input / groups, kernel, kernel]),
            bias: try scope.tensor("bias", shape: [output]), stride: stride, padding: padding, groups: groups)
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        conv2d(x, weight: weight, bias: bias, stride: stride, padding: padding, groups: groups)
    }
}

/// `nn.ConvTranspose2d(kernel 2, stride 2)` on [C, H, W]: weight [C, O, 2, 2], bias [O].
public struct ConvTranspose2x2: Sendable {
    public let weight: Tensor
    public let bias: Tensor?

    public init(_ scope: WeightScope, input: Int, output: Int) throws {
        weight = try scope.tensor("weight", shape: [input, output, 2, 2])
        bias = try scope.tensor("bias", shape: [output])
    }

    public func callAsFunction(_ x: Tensor) -> Tensor { convTranspose2x2(x, weight: weight, bias: bias) }
}

/// SAM's `MLP`: linear layers with ReLU between them (none after the last), optional sigmoid output.
public struct MLP: Sendable {
    public let layers: [Linear]
    public let sigmoidOutput: Bool

    public init(layers: [Linear], sigmoidOutput: Bool = false) {
        self.layers = layers
        self.sigmoidOutput = sigmoidOutput
    }

    /// Reads `layers.{0..}`; dims = [in, hidden..., out].
    public init(_ scope: WeightScope, dims: [Int], sigmoidOutput: Bool = false) throws {
        let layers = scope["layers"]
        self.layers = try (0..<(dims.count - 1)).map { i in try Linear(layers[i], input: dims[i], output: dims[i + 1]) }
        self.sigmoidOutput = sigmoidOutput
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        var y = x
        for (i, layer) in layers.enumerated() {
            y = layer(y)
            if i < layers.count - 1 { reluInPlace(&y) }
        }
        if sigmoidOutput { sigmoidInPlace(&y) }
        return y
    }
}

extension Linear {
    /// A 1x1 `nn.Conv2d` (weight [output, input, 1, 1]) read as the Linear it is on channels-last tokens.
    public init(pointwiseConv scope: WeightScope, input: Int, output: Int) throws {
        self.init(
            weight: try scope.tensor("weight", shape: [output, input, 1, 1]).reshaped([output, input]),
            bias: try scope.tensor("bias", shape: [output]))
    }
}

extension Conv2d {
    /// A Linear (weight [output, input]) applied at every position of a [C, H, W] map, as a 1x1 convolution.
    public init(pointwise linear: Linear) {
        self.init(weight: linear.weight.reshaped([linear.outputDim, linear.inputDim, 1, 1]), bias: linear.bias)
    }
}
