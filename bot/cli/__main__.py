"""`python -m bot.cli`: the `itff` command without its console script."""

from bot.cli import main

main()
