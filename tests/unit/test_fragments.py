from markupsafe import Markup

from app.fragments import FragmentCache


def test_fragments_are_rendered_once_and_returned_in_the_order_asked():
    cache = FragmentCache(max_entries=10)
    rendered = []

    def render(key):
        rendered.append(key)
        return Markup(f"<td>{key}</td>")

    assert cache.get_or_render_many(["a", "b"], render) == ["<td>a</td>", "<td>b</td>"]
    assert cache.get_or_render_many(["b", "c", "a"], render) == ["<td>b</td>", "<td>c</td>", "<td>a</td>"]
    assert rendered == ["a", "b", "c"]


def test_the_fragment_remembered_longest_ago_goes_first():
    cache = FragmentCache(max_entries=2)
    cache.get_or_render_many(["a", "b"], Markup)
    cache.get_or_render("a", lambda: Markup("a"))  # a found: nothing changes
    cache.get_or_render("c", lambda: Markup("c"))  # a goes, the first remembered
    assert len(cache) == 2
    rendered = []
    cache.get_or_render_many(["b", "c", "a"], lambda key: rendered.append(key) or Markup(key))
    assert rendered == ["a"]
