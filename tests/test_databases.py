from sqlalchemy import create_engine, text


def test_any_db_url_is_a_real_empty_database(any_db_url):
    eng = create_engine(any_db_url)
    with eng.begin() as c:
        c.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, name VARCHAR(20))"))
        c.execute(text("INSERT INTO t VALUES (1, '华为')"))
        assert c.execute(text("SELECT name FROM t")).scalar() == "华为"
    eng.dispose()
