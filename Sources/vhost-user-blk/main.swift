print("vhost-user-blk: not yet implemented")
