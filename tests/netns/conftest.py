from netns.fixtures import lab, swept_labs

__all__ = ["lab", "swept_labs"]
