/// The median and spread of repeated measurements (the machine is shared: medians, not means).
struct Statistics {
    var median: Double
    var minimum: Double
    var maximum: Double

    init(_ samples: [Double]) {
        let sorted = samples.sorted()
        minimum = sorted.first ?? 0
        maximum = sorted.last ?? 0
        if sorted.isEmpty {
            median = 0
        } else if sorted.count % 2 == 1 {
            median = sorted[sorted.count / 2]
        } else {
            median = (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
        }
    }
}
