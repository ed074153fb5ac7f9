// SupportBank module. See README.md for the layout of RAGSeg.
import TensorCore
