"""Steps the browser journeys share."""


def open_menu(page) -> None:
    """On a phone the sidebar (navigation, workspace switcher) is behind the menu button:
    open it, as a person would. On a laptop it is always shown."""
    menu = page.get_by_role("button", name="Open navigation")
    if menu.is_visible():
        menu.click()
        page.get_by_role("dialog", name="Menu").wait_for()


def nav_to(page, label: str) -> None:
    """Click `label` in the main navigation."""
    open_menu(page)
    page.get_by_role("navigation", name="Main navigation").get_by_role("link", name=label).click()
