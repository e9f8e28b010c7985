from raddiff_kit.server import main as serve
from raddiff_localize.app import build_app


def main() -> None:
    serve(build_app)


if __name__ == "__main__":
    main()
