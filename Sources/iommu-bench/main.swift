print("iommu-bench: not yet implemented")
