import XCTest
@testable import SAM2

final class SAM2ModuleTests: XCTestCase {}
