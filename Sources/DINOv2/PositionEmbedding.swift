import TensorCore

/// The learned position table and its resampling to the input's patch grid (docs/dinov2.md#position-table-resampling).
struct PositionEmbedding: Sendable {
    /// [1 + M·M, D]: row 0 belongs to CLS, rows 1... to an M x M grid in row-major order.
    let table: Tensor
    let grid: Int
    let resampling: DINOv2Config.PositionResampling

    /// Position rows for CLS and a rows x columns patch grid: [1 + rows·columns, D].
    ///
    /// transformers keeps the table as is only when the patch count equals the table's and the pixel height
    /// equals the width; everything else goes through `F.interpolate(size:, mode: "bicubic")`, antialiased
    /// for the registers model. The grid is resampled as D channels of an M x M image, then put back token-major.
    func rows(gridRows: Int, gridColumns: Int, pixelHeight: Int, pixelWidth: Int) -> Tensor {
        let d = table.shape[1]
        if gridRows * gridColumns == grid * grid && pixelHeight == pixelWidth { return table }
        let patchTable = sliced(table, axis: 0, range: 1..<(1 + grid * grid)).reshaped([grid, grid, d])
        let channelsFirst = permuted(patchTable, [2, 0, 1])
        let resampled = interpolate(
            channelsFirst, size: (height: gridRows, width: gridColumns), mode: .bicubic,
            antialias: resampling == .bicubicAntialiased)
        let tokenMajor = permuted(resampled, [1, 2, 0]).reshaped([gridRows * gridColumns, d])
        return concatenated([sliced(table, axis: 0, range: 0..<1), tokenMajor], axis: 0)
    }
}
