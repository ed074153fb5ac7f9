import XCTest
@testable import DINOv2

final class DINOv2ModuleTests: XCTestCase {}
