"""The command centre's figures: working time, the category catalogue with its time limits,
case deadlines, the indicators (one definition each) and the per-case facts they are read from."""
