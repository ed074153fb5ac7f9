// The bank module and its main class share the name `SupportBank`, and both SAM2 and SupportBank
// define `SupportMemory`: this file imports only the bank so its type can be named unambiguously.
import SupportBank

/// A support memory as the bank stores it (bf16 memory bits + fp32 object pointer).
public typealias BankMemory = SupportMemory
