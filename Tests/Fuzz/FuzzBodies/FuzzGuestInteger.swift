/// Little-endian integers taken from a fuzz input by the bodies that build guest rings and
/// requests (`FuzzInput` itself only hands out bytes). Past the end of the input they are 0.
enum FuzzGuestInteger {
    static func next<Value: FixedWidthInteger & UnsignedInteger>(_: Value.Type, from input: inout FuzzInput) -> Value {
        var value: Value = 0
        for index in 0..<MemoryLayout<Value>.size {
            value |= Value(input.byte()) << (8 * index)
        }
        return value
    }
}
