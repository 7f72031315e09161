VhostUserBlkCommand.main()
