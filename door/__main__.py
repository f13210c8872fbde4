"""`python -m door ...`: see door/server.py."""

from door.server import main

if __name__ == "__main__":
    main()
