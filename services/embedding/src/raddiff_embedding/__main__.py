from raddiff_embedding.app import build_app
from raddiff_kit.server import main as serve


def main() -> None:
    serve(build_app)


if __name__ == "__main__":
    main()
