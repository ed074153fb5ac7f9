import XCTest
@testable import RAGSegIO

final class RAGSegIOModuleTests: XCTestCase {}
