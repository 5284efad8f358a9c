"""Dataset plugins, one file each: every module in this folder is discovered and registers itself."""
