"""Command line, with the flags of RecBole's run_recbole.py: --model, --dataset, --config_files, --key=value."""

from recbole_unlearn.cli import main

if __name__ == "__main__":
    main()
